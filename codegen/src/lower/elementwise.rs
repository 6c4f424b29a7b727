//! Elementwise ops: unary math, binary arithmetic with broadcasting, comparisons, where, clip, cast; fused elementwise chains.
//!
//! Two kinds of kernels share one loop nest ([`emit_map`]):
//! - **f32 expressions** ([`Expr`]): every f32 unary/binary/variadic op of the family becomes a small
//!   expression tree over *leaves* (external operands, each with its own shape broadcast to the
//!   output); a fused chain of nodes ([`crate::lower::fuse`]) is one bigger tree. The inner loop runs
//!   4 lanes at a time (`f32x4`) where the target has vectors, with a scalar tail; transcendental
//!   functions come from [`crate::lower::math`].
//! - **typed scalar ops** ([`TOp`]): comparisons (→ bool), `and`/`or`/`xor`/`not`, `where`, `cast`
//!   between f32/f64/integers/bool, integer and f64 arithmetic — one element at a time.
//!
//! The loop nest: output axes of size 1 are dropped and adjacent axes merged where every operand is
//! contiguous across them (as the interpreter's `runs`), so the innermost axis has operand strides 0
//! (broadcast: loaded once per row) or 1. Rows of the outer axes are walked with an odometer of per-leaf
//! offsets; tiles are ranges of rows (or, for a single row, chunks of it) of at least [`TILE_ELEMS`]
//! elements, so every output element is computed by one tile in a fixed order.

use carve_ir::ops::activation::{ActKind, Activation};
use carve_ir::ops::elementwise::{ElementwiseOp as E, GeluApprox};
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

/// An f32 unary function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Un {
    /// `eˣ`.
    Exp,
    /// `ln x`.
    Log,
    /// `√x`.
    Sqrt,
    /// `x^0.5` (as `√x`, but `(−0)^0.5 = +0` and `(−∞)^0.5 = +∞`).
    PowHalf,
    /// `1/x`.
    Recip,
    /// `−x`.
    Neg,
    /// `|x|`.
    Abs,
    /// Error function.
    Erf,
    /// `tanh x`.
    Tanh,
    /// `1/(1 + e⁻ˣ)`.
    Sigmoid,
    /// `x < 0 ? 0 : x`.
    Relu,
    /// `x < 0 ? αx : x`.
    LeakyRelu(f32),
    /// `clamp(αx + β, 0, 1)`.
    HardSigmoid(f32, f32),
    /// `x · clamp(x/6 + 1/2, 0, 1)`.
    HardSwish,
    /// `x/2 · (1 + erf(x/√2))`.
    GeluErf,
    /// `x/2 · (1 + tanh(√(2/π)(x + 0.044715x³)))`.
    GeluTanh,
    /// `x · sigmoid(αx)`.
    Swish(f32),
    /// `ln(1 + eˣ)`.
    Softplus,
    /// `x / (1 + |x|)`.
    Softsign,
    /// `x · tanh(softplus(x))`.
    Mish,
    /// `x < 0 ? α(eˣ − 1) : x`.
    Elu(f32),
    /// `x ≤ 0 ? γα(eˣ − 1) : γx`.
    Selu(f32, f32),
    /// `max(0, x) + min(0, α(e^{x/α} − 1))`.
    Celu(f32),
    /// `x > α ? x : 0`.
    ThresholdedRelu(f32),
    /// `x < −λ ? x + b : x > λ ? x − b : 0` (bias, lambda).
    Shrink(f32, f32),
    /// −1, 0 or 1 (NaN stays NaN).
    Sign,
    /// Round down.
    Floor,
    /// Round up.
    Ceil,
    /// Round to nearest, ties to even.
    Round,
    /// `xⁿ` for a small integer `n`.
    PowI(i32),
}

/// An f32 binary function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bin {
    /// `a + b`.
    Add,
    /// `a − b`.
    Sub,
    /// `a · b`.
    Mul,
    /// `a / b`.
    Div,
    /// numpy `maximum` (NaN propagates).
    Max,
    /// numpy `minimum` (NaN propagates).
    Min,
    /// `aᵇ`.
    Pow,
    /// `a < 0 ? a·b : a`.
    PRelu,
    /// `a < b ? b : a` (clip's lower bound).
    ClipLo,
    /// `a > b ? b : a` (clip's upper bound).
    ClipHi,
}

/// An f32 expression over leaves (operands loaded from memory).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Operand `k`.
    Leaf(usize),
    /// A constant.
    Imm(f32),
    /// A unary function.
    Un(Un, Box<Expr>),
    /// A binary function.
    Bin(Bin, Box<Expr>, Box<Expr>),
}

impl Expr {
    fn un(op: Un, a: Expr) -> Expr {
        Expr::Un(op, Box::new(a))
    }

    fn bin(op: Bin, a: Expr, b: Expr) -> Expr {
        Expr::Bin(op, Box::new(a), Box::new(b))
    }

    /// The expression with every leaf `k` replaced by `f(k)`.
    pub fn substitute(&self, f: &mut dyn FnMut(usize) -> Expr) -> Expr {
        match self {
            Expr::Leaf(k) => f(*k),
            Expr::Imm(v) => Expr::Imm(*v),
            Expr::Un(op, a) => Expr::un(*op, a.substitute(f)),
            Expr::Bin(op, a, b) => Expr::bin(*op, a.substitute(f), b.substitute(f)),
        }
    }

    /// Leaves referenced, in first-use order, without repeats.
    pub fn leaves(&self) -> Vec<usize> {
        let mut v = Vec::new();
        self.visit_leaves(&mut |k| {
            if !v.contains(&k) {
                v.push(k);
            }
        });
        v
    }

    fn visit_leaves(&self, f: &mut dyn FnMut(usize)) {
        match self {
            Expr::Leaf(k) => f(*k),
            Expr::Imm(_) => {}
            Expr::Un(_, a) => a.visit_leaves(f),
            Expr::Bin(_, a, b) => {
                a.visit_leaves(f);
                b.visit_leaves(f);
            }
        }
    }

    /// Number of operations in the tree.
    pub fn size(&self) -> usize {
        match self {
            Expr::Leaf(_) | Expr::Imm(_) => 0,
            Expr::Un(_, a) => 1 + a.size(),
            Expr::Bin(_, a, b) => 1 + a.size() + b.size(),
        }
    }
}

/// Emits `e` with leaf values `leaves`.
pub fn eval(b: &mut FunctionBuilder, fx: Fx, e: &Expr, leaves: &[Value]) -> Value {
    match e {
        Expr::Leaf(k) => leaves[*k],
        Expr::Imm(v) => fx.c(b, *v),
        Expr::Un(op, a) => {
            let x = eval(b, fx, a, leaves);
            un(b, fx, *op, x)
        }
        Expr::Bin(op, l, r) => {
            let x = eval(b, fx, l, leaves);
            let y = eval(b, fx, r, leaves);
            bin(b, fx, *op, x, y)
        }
    }
}

/// Emits `op(x)` (the one lowering of each f32 unary function, activations included).
pub(crate) fn un(b: &mut FunctionBuilder, fx: Fx, op: Un, x: Value) -> Value {
    match op {
        Un::Exp => fx.exp(b, x),
        Un::Log => fx.log(b, x),
        Un::Sqrt => b.ins().sqrt(x),
        Un::PowHalf => {
            let s = b.ins().sqrt(x);
            let s = fx.addk(b, s, 0.0); // −0 → +0
            let ninf = fx.cmpk(b, FloatCC::Equal, x, f32::NEG_INFINITY);
            fx.selk(b, ninf, f32::INFINITY, s)
        }
        Un::Recip => {
            let one = fx.c(b, 1.0);
            b.ins().fdiv(one, x)
        }
        Un::Neg => b.ins().fneg(x),
        Un::Abs => b.ins().fabs(x),
        Un::Erf => fx.erf(b, x),
        Un::Tanh => fx.tanh(b, x),
        Un::Sigmoid => fx.sigmoid(b, x),
        Un::Relu => {
            let m = fx.cmpk(b, FloatCC::LessThan, x, 0.0);
            fx.selk(b, m, 0.0, x)
        }
        Un::LeakyRelu(a) => {
            let m = fx.cmpk(b, FloatCC::LessThan, x, 0.0);
            let ax = fx.mulk(b, x, a);
            fx.sel(b, m, ax, x)
        }
        Un::HardSigmoid(a, c) => {
            let k = fx.c(b, a);
            let v = fx.maddk(b, x, k, c);
            clamp01(b, fx, v)
        }
        Un::HardSwish => {
            let k = fx.c(b, 1.0 / 6.0);
            let v = fx.maddk(b, x, k, 0.5);
            let v = clamp01(b, fx, v);
            b.ins().fmul(x, v)
        }
        Un::GeluErf => fx.gelu_erf(b, x),
        Un::GeluTanh => fx.gelu_tanh(b, x),
        Un::Swish(a) => {
            let ax = if a == 1.0 { x } else { fx.mulk(b, x, a) };
            let s = fx.sigmoid(b, ax);
            b.ins().fmul(x, s)
        }
        Un::Softplus => softplus(b, fx, x),
        Un::Softsign => {
            let a = b.ins().fabs(x);
            let d = fx.addk(b, a, 1.0);
            b.ins().fdiv(x, d)
        }
        Un::Mish => {
            let s = softplus(b, fx, x);
            let t = fx.tanh(b, s);
            b.ins().fmul(x, t)
        }
        Un::Elu(a) => {
            let e = fx.exp(b, x);
            let e = fx.addk(b, e, -1.0);
            let e = fx.mulk(b, e, a);
            let m = fx.cmpk(b, FloatCC::LessThan, x, 0.0);
            fx.sel(b, m, e, x)
        }
        Un::Selu(a, g) => {
            let e = fx.exp(b, x);
            let e = fx.addk(b, e, -1.0);
            let e = fx.mulk(b, e, a * g);
            let gx = fx.mulk(b, x, g);
            let m = fx.cmpk(b, FloatCC::LessThanOrEqual, x, 0.0);
            fx.sel(b, m, e, gx)
        }
        Un::Celu(a) => {
            let t = fx.mulk(b, x, 1.0 / a);
            let e = fx.exp(b, t);
            let e = fx.addk(b, e, -1.0);
            let e = fx.mulk(b, e, a);
            let z = fx.c(b, 0.0);
            let neg = b.ins().fmin(e, z);
            let pos = b.ins().fmax(x, z);
            b.ins().fadd(pos, neg)
        }
        Un::ThresholdedRelu(a) => {
            let m = fx.cmpk(b, FloatCC::GreaterThan, x, a);
            let z = fx.c(b, 0.0);
            fx.sel(b, m, x, z)
        }
        Un::Shrink(bias, lambd) => {
            let lo = fx.cmpk(b, FloatCC::LessThan, x, -lambd);
            let hi = fx.cmpk(b, FloatCC::GreaterThan, x, lambd);
            let xp = fx.addk(b, x, bias);
            let xm = fx.addk(b, x, -bias);
            let z = fx.c(b, 0.0);
            let r = fx.sel(b, hi, xm, z);
            fx.sel(b, lo, xp, r)
        }
        Un::Sign => {
            let pos = fx.cmpk(b, FloatCC::GreaterThan, x, 0.0);
            let neg = fx.cmpk(b, FloatCC::LessThan, x, 0.0);
            let z = fx.mulk(b, x, 0.0); // ±0 → ±0 (compares equal to 0), NaN → NaN
            let r = fx.selk(b, neg, -1.0, z);
            fx.selk(b, pos, 1.0, r)
        }
        Un::Floor => b.ins().floor(x),
        Un::Ceil => b.ins().ceil(x),
        Un::Round => b.ins().nearest(x),
        Un::PowI(n) => powi(b, fx, x, n),
    }
}

/// The unary function computing activation `act`, when it is one (`none`, `clip`, `affine` and
/// `scaled_tanh` are not: they are compositions, lowered by the fused epilogue).
pub(crate) fn act_un(act: &Activation) -> Option<Un> {
    let (a, b) = (act.alpha, act.beta);
    Some(match act.kind {
        ActKind::Relu => Un::Relu,
        ActKind::LeakyRelu => Un::LeakyRelu(a),
        ActKind::HardSigmoid => Un::HardSigmoid(a, b),
        ActKind::HardSwish => Un::HardSwish,
        ActKind::Sigmoid => Un::Sigmoid,
        ActKind::Tanh => Un::Tanh,
        ActKind::GeluErf => Un::GeluErf,
        ActKind::GeluTanh => Un::GeluTanh,
        ActKind::Silu => Un::Swish(a),
        ActKind::ThresholdedRelu => Un::ThresholdedRelu(a),
        ActKind::Elu => Un::Elu(a),
        ActKind::Selu => Un::Selu(a, b),
        ActKind::Celu => Un::Celu(a),
        ActKind::Softsign => Un::Softsign,
        ActKind::Softplus => Un::Softplus,
        ActKind::Mish => Un::Mish,
        ActKind::None | ActKind::Clip | ActKind::Affine | ActKind::ScaledTanh => return None,
    })
}

/// numpy `maximum(0, minimum(1, v))` (NaN stays NaN).
fn clamp01(b: &mut FunctionBuilder, fx: Fx, v: Value) -> Value {
    let z = fx.c(b, 0.0);
    let o = fx.c(b, 1.0);
    let v = fx.clamp_hi(b, v, o);
    fx.clamp_lo(b, v, z)
}

/// `ln(1 + eˣ)` = `max(x, 0) + ln(1 + e^{−|x|})`.
fn softplus(b: &mut FunctionBuilder, fx: Fx, x: Value) -> Value {
    let a = b.ins().fabs(x);
    let na = b.ins().fneg(a);
    let e = fx.exp(b, na);
    let l = fx.log1p_pos(b, e);
    let z = fx.c(b, 0.0);
    let m = b.ins().fmax(x, z);
    b.ins().fadd(m, l)
}

/// `xⁿ` by repeated squaring; negative `n` divides once at the end.
fn powi(b: &mut FunctionBuilder, fx: Fx, x: Value, n: i32) -> Value {
    if n == 0 {
        return fx.c(b, 1.0);
    }
    let mut e = n.unsigned_abs();
    let mut base = x;
    let mut acc: Option<Value> = None;
    while e > 0 {
        if e & 1 == 1 {
            acc = Some(match acc {
                None => base,
                Some(a) => b.ins().fmul(a, base),
            });
        }
        e >>= 1;
        if e > 0 {
            base = b.ins().fmul(base, base);
        }
    }
    let r = acc.unwrap_or(x);
    if n < 0 {
        let one = fx.c(b, 1.0);
        b.ins().fdiv(one, r)
    } else {
        r
    }
}

fn bin(b: &mut FunctionBuilder, fx: Fx, op: Bin, x: Value, y: Value) -> Value {
    match op {
        Bin::Add => b.ins().fadd(x, y),
        Bin::Sub => b.ins().fsub(x, y),
        Bin::Mul => b.ins().fmul(x, y),
        Bin::Div => b.ins().fdiv(x, y),
        Bin::Max => b.ins().fmax(x, y),
        Bin::Min => b.ins().fmin(x, y),
        Bin::Pow => fx.pow(b, x, y),
        Bin::PRelu => {
            let m = fx.cmpk(b, FloatCC::LessThan, x, 0.0);
            let p = b.ins().fmul(x, y);
            fx.sel(b, m, p, x)
        }
        Bin::ClipLo => fx.clamp_lo(b, x, y),
        Bin::ClipHi => fx.clamp_hi(b, x, y),
    }
}

// ---------------------------------------------------------------------------------------------------
// Select: node → expression.

/// Input `k` as an expression: an inlined constant if it is a one-element f32 constant, else a leaf.
fn operand(info: &NodeInfo, k: usize) -> Result<Expr, String> {
    let d = info.in_dtype(k).map_err(|e| e.to_string())?;
    if d != DType::F32 {
        return Err(format!("input {k} is {d}, not f32"));
    }
    if let Some(v) = info.const_f32s(k)
        && v.len() == 1
    {
        return Ok(Expr::Imm(v[0]));
    }
    Ok(Expr::Leaf(k))
}

/// A one-element numeric constant input as f64.
fn const_scalar(info: &NodeInfo, k: usize) -> Option<f64> {
    let t = info.const_tensor(k)?;
    if t.len() != 1 {
        return None;
    }
    let v = carve_runtime::interp::util::to_f64(&t).ok()?;
    v.first().copied()
}

/// The f32 expression computing `info`'s node over its input slots (`Expr::Leaf(k)` = input `k`), or
/// why there is none (not f32, or an op outside the expression set).
pub fn node_expr(info: &NodeInfo) -> Result<Expr, String> {
    let Op::Elementwise(op) = info.op() else {
        return Err("not an elementwise op".into());
    };
    if info.num_outputs() != 1 || info.out_dtype(0).map_err(|e| e.to_string())? != DType::F32 {
        return Err("output is not f32".into());
    }
    let x = |k: usize| operand(info, k);
    let u = |op: Un| -> Result<Expr, String> { Ok(Expr::un(op, x(0)?)) };
    let b2 = |op: Bin| -> Result<Expr, String> { Ok(Expr::bin(op, x(0)?, x(1)?)) };
    match op {
        E::Exp(_) => u(Un::Exp),
        E::Log(_) => u(Un::Log),
        E::Sqrt(_) => u(Un::Sqrt),
        E::Reciprocal(_) => u(Un::Recip),
        E::Neg(_) => u(Un::Neg),
        E::Abs(_) => u(Un::Abs),
        E::Erf(_) => u(Un::Erf),
        E::Tanh(_) => u(Un::Tanh),
        E::Sigmoid(_) => u(Un::Sigmoid),
        E::Relu(_) => u(Un::Relu),
        E::LeakyRelu(o) => u(Un::LeakyRelu(o.alpha)),
        E::HardSigmoid(o) => u(Un::HardSigmoid(o.alpha, o.beta)),
        E::HardSwish(_) => u(Un::HardSwish),
        E::Gelu(o) => u(match o.approximate {
            GeluApprox::Erf => Un::GeluErf,
            GeluApprox::Tanh => Un::GeluTanh,
        }),
        E::Swish(o) => u(Un::Swish(o.alpha)),
        E::Softplus(_) => u(Un::Softplus),
        E::Softsign(_) => u(Un::Softsign),
        E::Mish(_) => u(Un::Mish),
        E::Elu(o) => u(Un::Elu(o.alpha)),
        E::Selu(o) => u(Un::Selu(o.alpha, o.gamma)),
        E::Celu(o) => u(Un::Celu(o.alpha)),
        E::ThresholdedRelu(o) => u(Un::ThresholdedRelu(o.alpha)),
        E::Shrink(o) => u(Un::Shrink(o.bias, o.lambd)),
        E::Sign(_) => u(Un::Sign),
        E::Floor(_) => u(Un::Floor),
        E::Ceil(_) => u(Un::Ceil),
        E::Round(_) => u(Un::Round),
        E::Add(_) => b2(Bin::Add),
        E::Sub(_) => b2(Bin::Sub),
        E::Mul(_) => b2(Bin::Mul),
        E::Div(_) => b2(Bin::Div),
        E::PRelu(_) => b2(Bin::PRelu),
        E::Max(_) | E::Min(_) | E::Sum(_) | E::Mean(_) => {
            let n = info.num_inputs();
            if n == 0 {
                return Err("no inputs".into());
            }
            let f = match op {
                E::Max(_) => Bin::Max,
                E::Min(_) => Bin::Min,
                _ => Bin::Add,
            };
            let mut acc = x(0)?;
            for k in 1..n {
                acc = Expr::bin(f, acc, x(k)?);
            }
            if let E::Mean(_) = op {
                acc = Expr::bin(Bin::Div, acc, Expr::Imm(n as f32));
            }
            Ok(acc)
        }
        E::Clip(_) => {
            let mut e = x(0)?;
            for (k, f) in [(1, Bin::ClipLo), (2, Bin::ClipHi)] {
                if !info.has_input(k) {
                    continue;
                }
                let shape = info.in_shape(k).map_err(|e| e.to_string())?;
                match shape.iter().product::<usize>() {
                    0 => continue,
                    1 => e = Expr::bin(f, e, x(k)?),
                    _ => return Err("clip bound is not a scalar".into()),
                }
            }
            Ok(e)
        }
        E::Pow(_) => {
            let base = x(0)?;
            if let Some(p) = const_scalar(info, 1) {
                if p == 0.5 {
                    return Ok(Expr::un(Un::PowHalf, base));
                }
                if p == p.trunc() && p.abs() <= 64.0 {
                    if p == 1.0 {
                        // x¹ = x, but keep an op so the node still has a kernel of its own.
                        return Ok(Expr::bin(Bin::Mul, base, Expr::Imm(1.0)));
                    }
                    return Ok(Expr::un(Un::PowI(p as i32), base));
                }
                if f64::from(p as f32) == p {
                    return Ok(Expr::bin(Bin::Pow, base, Expr::Imm(p as f32)));
                }
                return Err("pow exponent is not representable in f32".into());
            }
            Ok(Expr::bin(Bin::Pow, base, x(1)?))
        }
        _ => Err(format!("{} has no f32 expression", op.name())),
    }
}

// ---------------------------------------------------------------------------------------------------
// Typed scalar ops.

/// A typed scalar op (one element at a time, any supported element types).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TOp {
    /// Comparison of two operands of `dtype` → bool.
    Cmp(CmpKind, DType),
    /// `and`/`or`/`xor` of bools.
    Logic(LogicKind),
    /// `not` of a bool.
    Not,
    /// `cond ? a : b`.
    Where,
    /// Conversion `from → to`.
    Cast(DType, DType),
    /// Integer or f64 binary arithmetic in `dtype`.
    Arith(ArithKind, DType),
    /// Integer or f64 unary op in `dtype`.
    Unary(UnaryKind, DType),
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpKind {
    /// `==`.
    Eq,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
}

/// A logical op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicKind {
    /// `a && b`.
    And,
    /// `a || b`.
    Or,
    /// `a != b`.
    Xor,
}

/// Binary arithmetic of the typed path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithKind {
    /// Wrapping `+`.
    Add,
    /// Wrapping `−`.
    Sub,
    /// Wrapping `·`.
    Mul,
    /// Division (integers truncate; division by zero gives 0, `MIN / −1` wraps).
    Div,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
}

/// Unary ops of the typed path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryKind {
    /// Wrapping negation.
    Neg,
    /// Wrapping absolute value.
    Abs,
    /// `max(x, 0)`.
    Relu,
    /// `√x` (f64 only).
    Sqrt,
}

/// The Cranelift type elements of `d` are loaded as (None: not supported natively).
pub fn clif_type(d: DType) -> Option<types::Type> {
    Some(match d {
        DType::F32 => types::F32,
        DType::F64 => types::F64,
        DType::I64 | DType::U64 => types::I64,
        DType::I32 | DType::U32 => types::I32,
        DType::I16 | DType::U16 => types::I16,
        DType::I8 | DType::U8 | DType::Bool => types::I8,
        _ => return None,
    })
}

fn is_plain_int(d: DType) -> bool {
    matches!(
        d,
        DType::I64
            | DType::I32
            | DType::I16
            | DType::I8
            | DType::U64
            | DType::U32
            | DType::U16
            | DType::U8
    )
}

/// The typed op for `info`'s node, or why there is none.
fn typed_op(info: &NodeInfo) -> Result<TOp, String> {
    let Op::Elementwise(op) = info.op() else {
        return Err("not an elementwise op".into());
    };
    let dt = |k: usize| info.in_dtype(k).map_err(|e| e.to_string());
    let out = info.out_dtype(0).map_err(|e| e.to_string())?;
    let same2 = || -> Result<DType, String> {
        let (a, b) = (dt(0)?, dt(1)?);
        if a != b {
            return Err(format!("operands have types {a} and {b}"));
        }
        Ok(a)
    };
    let numeric = |d: DType| d == DType::F32 || d == DType::F64 || is_plain_int(d);
    let cmp = |k: CmpKind| -> Result<TOp, String> {
        let d = same2()?;
        if numeric(d) || (d == DType::Bool && k == CmpKind::Eq) {
            Ok(TOp::Cmp(k, d))
        } else {
            Err(format!("no native comparison of {d}"))
        }
    };
    let logic = |k: LogicKind| -> Result<TOp, String> {
        if same2()? == DType::Bool {
            Ok(TOp::Logic(k))
        } else {
            Err("logic ops need bools".into())
        }
    };
    let arith = |k: ArithKind| -> Result<TOp, String> {
        let d = same2()?;
        let ok = d == DType::F64 || is_plain_int(d);
        if ok {
            Ok(TOp::Arith(k, d))
        } else {
            Err(format!("no native {} on {d}", op.name()))
        }
    };
    let unary = |k: UnaryKind| -> Result<TOp, String> {
        let d = dt(0)?;
        let ok = match k {
            UnaryKind::Sqrt => d == DType::F64,
            UnaryKind::Neg | UnaryKind::Abs | UnaryKind::Relu => {
                d == DType::F64 || (is_plain_int(d) && d.is_signed_int())
            }
        };
        if ok {
            Ok(TOp::Unary(k, d))
        } else {
            Err(format!("no native {} on {d}", op.name()))
        }
    };
    match op {
        E::Equal(_) => cmp(CmpKind::Eq),
        E::Greater(_) => cmp(CmpKind::Gt),
        E::GreaterOrEqual(_) => cmp(CmpKind::Ge),
        E::Less(_) => cmp(CmpKind::Lt),
        E::LessOrEqual(_) => cmp(CmpKind::Le),
        E::And(_) => logic(LogicKind::And),
        E::Or(_) => logic(LogicKind::Or),
        E::Xor(_) => logic(LogicKind::Xor),
        E::Not(_) if dt(0)? == DType::Bool => Ok(TOp::Not),
        E::Where(_) => {
            let (c, a, b) = (dt(0)?, dt(1)?, dt(2)?);
            if c == DType::Bool && a == b && clif_type(a).is_some() {
                Ok(TOp::Where)
            } else {
                Err(format!("no native where over {c}, {a}, {b}"))
            }
        }
        E::Cast(_) => {
            let from = dt(0)?;
            let ok = |d: DType| clif_type(d).is_some();
            if !ok(from) || !ok(out) {
                return Err(format!("no native cast {from} → {out}"));
            }
            if from.is_float() && out == DType::U64 {
                return Err("float → u64 casts fall back (values above 2^63)".into());
            }
            Ok(TOp::Cast(from, out))
        }
        E::Add(_) => arith(ArithKind::Add),
        E::Sub(_) => arith(ArithKind::Sub),
        E::Mul(_) => arith(ArithKind::Mul),
        E::Div(_) => arith(ArithKind::Div),
        E::Max(_) if info.num_inputs() == 2 => arith(ArithKind::Max),
        E::Min(_) if info.num_inputs() == 2 => arith(ArithKind::Min),
        E::Neg(_) => unary(UnaryKind::Neg),
        E::Abs(_) => unary(UnaryKind::Abs),
        E::Relu(_) => unary(UnaryKind::Relu),
        E::Sqrt(_) => unary(UnaryKind::Sqrt),
        _ => Err(format!("no native kernel for {} on these types", op.name())),
    }
}

/// Normalizes a loaded bool byte to 0/1.
fn truth(b: &mut FunctionBuilder, v: Value) -> Value {
    b.ins().icmp_imm_s(IntCC::NotEqual, v, 0)
}

/// Sign- or zero-extends an integer of type `d` to i64.
fn widen(b: &mut FunctionBuilder, d: DType, v: Value) -> Value {
    let ty = b.func.dfg.value_type(v);
    if ty == types::I64 {
        v
    } else if d.is_signed_int() {
        b.ins().sextend(types::I64, v)
    } else {
        b.ins().uextend(types::I64, v)
    }
}

/// Emits the typed op on scalar operands `x`.
fn eval_typed(b: &mut FunctionBuilder, op: TOp, x: &[Value]) -> Value {
    match op {
        TOp::Cmp(k, d) => {
            if d.is_float() {
                let cc = match k {
                    CmpKind::Eq => FloatCC::Equal,
                    CmpKind::Gt => FloatCC::GreaterThan,
                    CmpKind::Ge => FloatCC::GreaterThanOrEqual,
                    CmpKind::Lt => FloatCC::LessThan,
                    CmpKind::Le => FloatCC::LessThanOrEqual,
                };
                b.ins().fcmp(cc, x[0], x[1])
            } else {
                let s = d.is_signed_int();
                let cc = match (k, s) {
                    (CmpKind::Eq, _) => IntCC::Equal,
                    (CmpKind::Gt, true) => IntCC::SignedGreaterThan,
                    (CmpKind::Ge, true) => IntCC::SignedGreaterThanOrEqual,
                    (CmpKind::Lt, true) => IntCC::SignedLessThan,
                    (CmpKind::Le, true) => IntCC::SignedLessThanOrEqual,
                    (CmpKind::Gt, false) => IntCC::UnsignedGreaterThan,
                    (CmpKind::Ge, false) => IntCC::UnsignedGreaterThanOrEqual,
                    (CmpKind::Lt, false) => IntCC::UnsignedLessThan,
                    (CmpKind::Le, false) => IntCC::UnsignedLessThanOrEqual,
                };
                let (p, q) = if d == DType::Bool {
                    (truth(b, x[0]), truth(b, x[1]))
                } else {
                    (x[0], x[1])
                };
                b.ins().icmp(cc, p, q)
            }
        }
        TOp::Logic(k) => {
            let (p, q) = (truth(b, x[0]), truth(b, x[1]));
            match k {
                LogicKind::And => b.ins().band(p, q),
                LogicKind::Or => b.ins().bor(p, q),
                LogicKind::Xor => b.ins().bxor(p, q),
            }
        }
        TOp::Not => {
            let p = truth(b, x[0]);
            b.ins().bxor_imm_s(p, 1)
        }
        TOp::Where => {
            let c = truth(b, x[0]);
            b.ins().select(c, x[1], x[2])
        }
        TOp::Cast(from, to) => cast(b, from, to, x[0]),
        TOp::Arith(k, d) => {
            let (p, q) = (x[0], x[1]);
            if d.is_float() {
                match k {
                    ArithKind::Add => b.ins().fadd(p, q),
                    ArithKind::Sub => b.ins().fsub(p, q),
                    ArithKind::Mul => b.ins().fmul(p, q),
                    ArithKind::Div => b.ins().fdiv(p, q),
                    ArithKind::Max => b.ins().fmax(p, q),
                    ArithKind::Min => b.ins().fmin(p, q),
                }
            } else {
                let s = d.is_signed_int();
                match k {
                    ArithKind::Add => b.ins().iadd(p, q),
                    ArithKind::Sub => b.ins().isub(p, q),
                    ArithKind::Mul => b.ins().imul(p, q),
                    ArithKind::Max if s => b.ins().smax(p, q),
                    ArithKind::Max => b.ins().umax(p, q),
                    ArithKind::Min if s => b.ins().smin(p, q),
                    ArithKind::Min => b.ins().umin(p, q),
                    ArithKind::Div => int_div(b, s, p, q),
                }
            }
        }
        TOp::Unary(k, d) => {
            let v = x[0];
            if d.is_float() {
                match k {
                    UnaryKind::Neg => b.ins().fneg(v),
                    UnaryKind::Abs => b.ins().fabs(v),
                    UnaryKind::Sqrt => b.ins().sqrt(v),
                    UnaryKind::Relu => {
                        let z = b.ins().f64const(0.0);
                        let m = b.ins().fcmp(FloatCC::LessThan, v, z);
                        b.ins().select(m, z, v)
                    }
                }
            } else {
                let ty = b.func.dfg.value_type(v);
                match k {
                    UnaryKind::Neg => b.ins().ineg(v),
                    UnaryKind::Abs => b.ins().iabs(v),
                    UnaryKind::Relu => {
                        let z = b.ins().iconst(ty, 0);
                        b.ins().smax(v, z)
                    }
                    UnaryKind::Sqrt => v,
                }
            }
        }
    }
}

/// numpy integer division: truncating, `x / 0 = 0`, `MIN / −1 = MIN` (wrapping); never traps.
fn int_div(b: &mut FunctionBuilder, signed: bool, p: Value, q: Value) -> Value {
    let ty = b.func.dfg.value_type(p);
    let zero = b.ins().iconst(ty, 0);
    let one = b.ins().iconst(ty, 1);
    let z = b.ins().icmp_imm_s(IntCC::Equal, q, 0);
    if signed {
        let m1 = b.ins().icmp_imm_s(IntCC::Equal, q, -1);
        let bad = b.ins().bor(z, m1);
        let safe = b.ins().select(bad, one, q);
        let r = b.ins().sdiv(p, safe);
        let neg = b.ins().ineg(p);
        let r = b.ins().select(m1, neg, r);
        b.ins().select(z, zero, r)
    } else {
        let safe = b.ins().select(z, one, q);
        let r = b.ins().udiv(p, safe);
        b.ins().select(z, zero, r)
    }
}

/// ONNX Cast between the natively supported types (see the interpreter's `cast` module): floats to
/// integers truncate, NaN gives 0, values outside i64 give i64::MIN, then wrap to the width; to bool is
/// `!= 0` (NaN is true).
fn cast(b: &mut FunctionBuilder, from: DType, to: DType, v: Value) -> Value {
    if from == to {
        return v;
    }
    let from_ty = b.func.dfg.value_type(v);
    let Some(to_ty) = clif_type(to) else {
        return v;
    };
    if to == DType::Bool {
        return if from.is_float() {
            let z = if from_ty == types::F32 {
                b.ins().f32const(0.0)
            } else {
                b.ins().f64const(0.0)
            };
            b.ins().fcmp(FloatCC::NotEqual, v, z)
        } else {
            b.ins().icmp_imm_s(IntCC::NotEqual, v, 0)
        };
    }
    if from.is_float() && to.is_float() {
        return if to_ty == types::F64 {
            b.ins().fpromote(types::F64, v)
        } else {
            b.ins().fdemote(types::F32, v)
        };
    }
    if from.is_float() {
        // → integer (not u64): trunc with saturation, then values ≥ 2^63 become i64::MIN.
        let i = b.ins().fcvt_to_sint_sat(types::I64, v);
        let big = if from_ty == types::F32 {
            b.ins().f32const(9.223_372e18)
        } else {
            b.ins().f64const(9.223_372_036_854_776e18)
        };
        let over = b.ins().fcmp(FloatCC::GreaterThanOrEqual, v, big);
        let min = b.ins().iconst(types::I64, i64::MIN);
        let i = b.ins().select(over, min, i);
        return if to_ty == types::I64 {
            i
        } else {
            b.ins().ireduce(to_ty, i)
        };
    }
    // From an integer or bool.
    let w = if from == DType::Bool {
        let t = truth(b, v);
        b.ins().uextend(types::I64, t)
    } else {
        widen(b, from, v)
    };
    if to.is_float() {
        return if from == DType::U64 {
            b.ins().fcvt_from_uint(to_ty, w)
        } else {
            b.ins().fcvt_from_sint(to_ty, w)
        };
    }
    if to_ty == types::I64 {
        w
    } else {
        b.ins().ireduce(to_ty, w)
    }
}

// ---------------------------------------------------------------------------------------------------
// The loop nest.

/// One operand of a map kernel: where it comes from (an index for [`Kb::input`]), its element type and
/// its shape (broadcast to the output's).
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// Index of the operand for [`Kb::input`].
    pub src: usize,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
}

/// The body of a map kernel: computes one output element (or 4 lanes) from the operand values.
pub type Body<'a> = &'a dyn Fn(&mut FunctionBuilder, Fx, &[Value]) -> Value;

/// Merged loop axes: `(dim, per-leaf strides in elements)`, outermost first; never empty.
fn merged_axes(out: &[usize], leaves: &[LeafSpec]) -> Vec<(usize, Vec<i64>)> {
    let r = out.len();
    let k = leaves.len();
    let mut axes: Vec<(usize, Vec<i64>)> = Vec::new();
    for (i, &d) in out.iter().enumerate() {
        if d == 1 {
            continue;
        }
        let mut st = vec![0i64; k];
        for (j, l) in leaves.iter().enumerate() {
            if let Some(a) = (i + l.shape.len()).checked_sub(r)
                && l.shape[a] != 1
            {
                st[j] = l.shape[a + 1..].iter().product::<usize>() as i64;
            }
        }
        if let Some((pd, ps)) = axes.last_mut()
            && (0..k).all(|j| ps[j] == st[j] * d as i64)
        {
            *pd *= d;
            *ps = st;
            continue;
        }
        axes.push((d, st));
    }
    if axes.is_empty() {
        axes.push((1, vec![0; k]));
    }
    axes
}

/// Emits a map kernel: `out[i] = body(leaves broadcast at i)` over `out_shape`, output 0 of type
/// `out_dtype`. With `vectorize` (only for all-f32 operands and output) the inner loop runs 4 lanes at a
/// time where the target has vectors.
pub fn emit_map(
    e: &mut Emitter,
    out_shape: &[usize],
    out_dtype: DType,
    leaves: &[LeafSpec],
    vectorize: bool,
    body: Body,
) -> Result<(), CodegenError> {
    let out_ty = clif_type(out_dtype).ok_or_else(|| e.info.err("unsupported output type"))?;
    let mut leaf_ty = Vec::with_capacity(leaves.len());
    for l in leaves {
        leaf_ty.push(clif_type(l.dtype).ok_or_else(|| e.info.err("unsupported operand type"))?);
    }
    let lanes = if vectorize && e.target().f32_lanes() >= 4 {
        4
    } else {
        1
    };
    let fma = e.target().has_fma();
    let axes = merged_axes(out_shape, leaves);
    let (inner_len, inner_st) = axes[axes.len() - 1].clone();
    let outer = axes[..axes.len() - 1].to_vec();
    let rows: usize = outer.iter().map(|a| a.0).product();
    let n = rows * inner_len;
    let want = (n / TILE_ELEMS).clamp(1, MAX_TILES);
    // Tiles: row ranges, or chunks of the single row.
    let split_row = rows == 1;
    let (n_tiles, per_tile) = if split_row {
        let chunk = inner_len.div_ceil(want).next_multiple_of(4).max(4);
        (inner_len.div_ceil(chunk), chunk)
    } else {
        let rpt = rows.div_ceil(want.min(rows));
        (rows.div_ceil(rpt), rpt)
    };
    let out_bytes = out_ty.bytes() as i64;
    let leaves = leaves.to_vec();
    e.kernel(n_tiles as u64, |kb| {
        let mut bases = Vec::with_capacity(leaves.len());
        for l in &leaves {
            bases.push(kb.input(l.src)?);
        }
        let out_base = kb.output(0)?;
        let cx = RowCx {
            bases: &bases,
            leaf_ty: &leaf_ty,
            inner_st: &inner_st,
            out_base,
            out_bytes,
            lanes,
            fma,
            body,
        };
        kb.for_tiles(|kb, t| {
            if split_row {
                let lo = kb.b.ins().imul_imm_s(t, per_tile as i64);
                let hi0 = kb.b.ins().iadd_imm_s(lo, per_tile as i64);
                let len = kb.iconst(inner_len as i64);
                let hi = kb.b.ins().smin(hi0, len);
                let zero = kb.iconst(0);
                let offs = vec![zero; leaves.len()];
                return cx.row(kb, &offs, zero, lo, hi, None);
            }
            let r0 = kb.b.ins().imul_imm_s(t, per_tile as i64);
            let r1a = kb.b.ins().iadd_imm_s(r0, per_tile as i64);
            let nrows = kb.iconst(rows as i64);
            let r1 = kb.b.ins().smin(r1a, nrows);
            // Odometer state: index per outer axis and element offset per leaf.
            let idx: Vec<_> = outer.iter().map(|_| kb.b.declare_var(types::I64)).collect();
            let offv: Vec<_> = leaves
                .iter()
                .map(|_| kb.b.declare_var(types::I64))
                .collect();
            let mut rem = r0;
            let mut offs: Vec<Value> = vec![kb.iconst(0); leaves.len()];
            for (a, (d, st)) in outer.iter().enumerate().rev() {
                let dv = kb.iconst(*d as i64);
                let i = kb.b.ins().urem(rem, dv);
                rem = kb.b.ins().udiv(rem, dv);
                kb.b.def_var(idx[a], i);
                for (j, &s) in st.iter().enumerate() {
                    if s != 0 {
                        let p = kb.b.ins().imul_imm_s(i, s);
                        offs[j] = kb.b.ins().iadd(offs[j], p);
                    }
                }
            }
            for (j, &o) in offs.iter().enumerate() {
                kb.b.def_var(offv[j], o);
            }
            kb.for_range(r0, r1, 1, |kb, r| {
                let offs: Vec<Value> = offv.iter().map(|&v| kb.b.use_var(v)).collect();
                let out_off = kb.b.ins().imul_imm_s(r, inner_len as i64);
                let zero = kb.iconst(0);
                let len = kb.iconst(inner_len as i64);
                cx.row(kb, &offs, out_off, zero, len, Some(inner_len))?;
                // Advance the odometer.
                let cont = kb.b.create_block();
                for a in (0..outer.len()).rev() {
                    let (d, st) = &outer[a];
                    let i = kb.b.use_var(idx[a]);
                    let i1 = kb.b.ins().iadd_imm_s(i, 1);
                    let bump = |kb: &mut Kb, k: i64| {
                        for (j, &s) in st.iter().enumerate() {
                            if s != 0 {
                                let o = kb.b.use_var(offv[j]);
                                let o = kb.b.ins().iadd_imm_s(o, s * k);
                                kb.b.def_var(offv[j], o);
                            }
                        }
                    };
                    if a == 0 {
                        kb.b.def_var(idx[a], i1);
                        bump(kb, 1);
                        kb.b.ins().jump(cont, &[]);
                        break;
                    }
                    let inc = kb.b.create_block();
                    let carry = kb.b.create_block();
                    let c = kb.b.ins().icmp_imm_s(IntCC::SignedLessThan, i1, *d as i64);
                    kb.b.ins().brif(c, inc, &[], carry, &[]);
                    kb.b.switch_to_block(inc);
                    kb.b.def_var(idx[a], i1);
                    bump(kb, 1);
                    kb.b.ins().jump(cont, &[]);
                    kb.b.switch_to_block(carry);
                    let z = kb.iconst(0);
                    kb.b.def_var(idx[a], z);
                    bump(kb, -(*d as i64 - 1));
                }
                if outer.is_empty() {
                    kb.b.ins().jump(cont, &[]);
                }
                kb.b.switch_to_block(cont);
                Ok(())
            })
        })
    })
}

/// What the row emitter needs.
struct RowCx<'a> {
    bases: &'a [Value],
    leaf_ty: &'a [types::Type],
    inner_st: &'a [i64],
    out_base: Value,
    out_bytes: i64,
    lanes: usize,
    fma: bool,
    body: Body<'a>,
}

impl RowCx<'_> {
    /// One row: elements `lo..hi` of the inner axis, leaves at element offsets `offs`, output at
    /// element offset `out_off`. `static_len` is the row length when known (rows mode).
    fn row(
        &self,
        kb: &mut Kb,
        offs: &[Value],
        out_off: Value,
        lo: Value,
        hi: Value,
        static_len: Option<usize>,
    ) -> Result<(), CodegenError> {
        let k = self.bases.len();
        let mut addr = Vec::with_capacity(k);
        for (j, &off) in offs.iter().enumerate() {
            addr.push(kb.offset(self.bases[j], off, self.leaf_ty[j].bytes() as i64));
        }
        let out_addr = kb.offset(self.out_base, out_off, self.out_bytes);
        // Broadcast leaves: one load per row.
        let mut hoisted: Vec<Option<Value>> = vec![None; k];
        for j in 0..k {
            if self.inner_st[j] == 0 {
                hoisted[j] = Some(kb.load(self.leaf_ty[j], addr[j], 0));
            }
        }
        let scalar = Fx {
            ty: types::F32,
            fma: self.fma,
        };
        let vec_ok = self.lanes == 4 && static_len.is_none_or(|l| l >= 4);
        let tail_lo = if vec_ok {
            let vx = Fx {
                ty: types::F32X4,
                fma: self.fma,
            };
            let splat: Vec<Option<Value>> = hoisted
                .iter()
                .map(|h| h.map(|v| kb.b.ins().splat(types::F32X4, v)))
                .collect();
            let span = kb.b.ins().isub(hi, lo);
            let vspan = kb.b.ins().band_imm_s(span, -4);
            let vend = kb.b.ins().iadd(lo, vspan);
            kb.for_range(lo, vend, 4, |kb, i| {
                let mut vals = Vec::with_capacity(k);
                for j in 0..k {
                    vals.push(match splat[j] {
                        Some(v) => v,
                        None => {
                            let a = kb.offset(addr[j], i, 4);
                            kb.load(types::F32X4, a, 0)
                        }
                    });
                }
                let r = (self.body)(kb.b, vx, &vals);
                let a = kb.offset(out_addr, i, 4);
                kb.store(r, a, 0);
                Ok(())
            })?;
            vend
        } else {
            lo
        };
        kb.for_range(tail_lo, hi, 1, |kb, i| {
            let mut vals = Vec::with_capacity(k);
            for j in 0..k {
                vals.push(match hoisted[j] {
                    Some(v) => v,
                    None => {
                        let a = kb.offset(addr[j], i, self.leaf_ty[j].bytes() as i64);
                        kb.load(self.leaf_ty[j], a, 0)
                    }
                });
            }
            let r = (self.body)(kb.b, scalar, &vals);
            let a = kb.offset(out_addr, i, self.out_bytes);
            kb.store(r, a, 0);
            Ok(())
        })
    }
}

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
pub fn lower(info: &NodeInfo, _w: &mut Weights) -> Result<Lowering, CodegenError> {
    if info.num_outputs() != 1 {
        return Ok(Lowering::Fallback(
            "elementwise op with several outputs".into(),
        ));
    }
    let out_shape = info.out_shape(0)?;
    let out_dtype = info.out_dtype(0)?;
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
