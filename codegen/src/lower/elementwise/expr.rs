//! f32 expressions ([`Expr`]) over leaves, their emission ([`eval`]) and the select step node →
//! expression ([`node_expr`]).

use super::*;

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

// ---------------------------------------------------------------------------------------------------
// Select: node → expression.

/// Input `k` as an expression: an inlined constant if it is a one-element f32 constant, else a leaf.
pub(crate) fn operand(info: &NodeInfo, k: usize) -> Result<Expr, String> {
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
pub(crate) fn const_scalar(info: &NodeInfo, k: usize) -> Option<f64> {
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
